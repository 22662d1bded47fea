"""modelhub.domain"""
