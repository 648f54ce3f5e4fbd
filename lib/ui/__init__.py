"""The Streamlit side shared by every page: the sidebar and session, the shared resources, the
database check, the private-internals adapter, text helpers.
"""
