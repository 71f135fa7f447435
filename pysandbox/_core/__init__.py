"""The sandbox core: below Modal's API, above the host runtime."""
