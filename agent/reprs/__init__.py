"""Safe reprs: any user value becomes a bounded, already-safe ``ReprNode`` tree."""
