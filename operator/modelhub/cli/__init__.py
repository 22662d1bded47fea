"""modelhub.cli"""
