"""The shipped shapes model as a backend: its vocabulary (what it knows) and the world check (does a picture belong to its world).
"""
