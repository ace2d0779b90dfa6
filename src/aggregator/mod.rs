//! The site aggregator (issue 3: ingest). Being written.
