"""Listings (挂牌) and the building dictionary (楼盘字典)."""
