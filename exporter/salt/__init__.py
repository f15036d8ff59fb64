"""Salt events: tags classified first, then only the fields the exporter reads, as typed records."""
