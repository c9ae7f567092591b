"""searchrel.student"""
