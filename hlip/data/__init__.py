"""Data: DICOM ingestion (source, dicom, series, volume, deid, scrub, preprocess, manifest, quarantine, report,
study, ingest), the study contract and the training dataset. Nothing heavy is imported here."""
