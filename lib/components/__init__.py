"""Custom components (Streamlit components v2) and the assets they share."""
