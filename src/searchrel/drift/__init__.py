"""searchrel.drift"""
