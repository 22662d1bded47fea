"""modelhub.loader"""
