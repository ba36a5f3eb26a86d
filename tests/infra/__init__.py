"""Offline checks of infra/: Terraform, start-up scripts, systemd units, the Ray cluster."""
