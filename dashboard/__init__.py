"""The local live web dashboard, rendering the same spec as Metabase."""
