"""I/O adapters free of Home Assistant, shared by the integration and the community server.

They talk to the outside world (HTTP) with the session their host passes in and return
plain data; the engine's types (`core/`) turn that into its inputs. Packaged a second time
as `netbewust_adapters` for the server, so they import nothing from the engine.
"""
