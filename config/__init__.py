"""Settings and reference data: States (EN/FR/ES names, ISO codes, CCM status), missions."""
