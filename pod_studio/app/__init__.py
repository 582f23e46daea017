"""App layer: the Qt bridge between async services and widgets (controllers, TaskRunner)."""
