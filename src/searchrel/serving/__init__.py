"""searchrel.serving"""
