"""Jobs: per-jid state from publish to verdict, and the topologies that change who answers."""
