"""searchrel.features"""
