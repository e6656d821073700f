"""The price tables (moved out of include/config.py)."""

from include.capacity import prices


def test_price_table_covers_every_allowed_instance_type():
    for instance_type in prices.ALLOWED_INSTANCE_TYPES:
        ec2, emr = prices.PRICE_TABLE_USD_PER_HOUR[instance_type]
        assert ec2 > 0
        assert 0 < emr < ec2
