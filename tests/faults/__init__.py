"""Fault injection against the real service: kill -9, lost broker, server restarts, full disk.

Every test here is marked ``faults``. ``scripts/faults`` runs them at full size
(``CCM_FAULTS_FULL=1``) and writes docs/RELIABILITY.md from the figures they record.
"""
