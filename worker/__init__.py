"""The Celery app and the edges of ccm-intake: IMAP, SMTP, the database and the archive."""
