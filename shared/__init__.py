"""Kuzet wire contracts: the topic tree, message schemas and their validation, shared by edge and central."""

__version__ = "0.1.0"
