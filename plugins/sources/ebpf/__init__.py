"""ebpf."""
