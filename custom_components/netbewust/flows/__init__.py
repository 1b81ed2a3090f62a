"""Config and subentry flow steps, their forms and their validation.

Home Assistant's entry point stays config_flow.py at the package root.
"""
