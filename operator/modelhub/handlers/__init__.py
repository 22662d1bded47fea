"""modelhub.handlers"""
