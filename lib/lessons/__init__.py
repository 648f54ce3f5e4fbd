"""One package per lesson: its tables, measurements, view (figures and frames, no Streamlit),
job kinds and cached entry points.
"""
