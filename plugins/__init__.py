"""The built-in plugins of graphnet, registered through the ``graphnet`` entry-point group
exactly as a third party's plugins are."""
