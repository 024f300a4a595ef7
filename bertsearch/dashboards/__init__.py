"""Kibana dashboards over the query log: the saved objects (`bertsearch-dashboards.ndjson`, written by
scripts/build-dashboards) and their import into Kibana (`kibana.py`)."""

from pathlib import Path

DASHBOARDS_FILE = Path(__file__).resolve().parent / "bertsearch-dashboards.ndjson"
