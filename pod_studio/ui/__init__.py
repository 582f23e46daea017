"""UI layer: windows, docks, editors and dialogs. Pure views driven by app controllers."""
