"""Deals: a buyer's purchase of a listing, its stage dates, and the re-checks planned before them."""
