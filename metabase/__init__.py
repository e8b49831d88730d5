"""Metabase dashboards as code and their provisioning through Metabase's REST API."""
