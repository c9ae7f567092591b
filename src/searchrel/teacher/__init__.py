"""searchrel.teacher"""
