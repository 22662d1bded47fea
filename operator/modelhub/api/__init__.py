"""modelhub.api"""
