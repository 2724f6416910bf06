"""Data: DICOM ingestion (source, dicom, series, volume, deid, scrub, preprocess, manifest, quarantine, report,
study, ingest) and the demo corpus generator (`hlip.data.demo`). Nothing heavy is imported here."""
