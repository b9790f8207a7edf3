"""Service commitments (安心服务承诺): the versioned catalog and the rules for attaching them."""
