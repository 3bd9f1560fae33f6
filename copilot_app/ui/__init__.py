"""PySide6 widgets and the Qt bridge to the engine. The only place Qt lives."""
