"""The offline deployment check: infra/ against Azure's type definitions, the rules a schema
cannot express, Microsoft's Kusto engine and the app's own setting ranges."""
