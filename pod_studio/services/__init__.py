"""Services layer: async use cases and resilience policies. Qt-free."""
