"""lenses"""
