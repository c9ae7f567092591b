"""searchrel.data"""
