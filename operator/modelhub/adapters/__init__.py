"""modelhub.adapters"""
