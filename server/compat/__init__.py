"""The APIs existing clients (Apollo, Spring Cloud Config, Nacos) read through unchanged.

Each protocol's handlers map its paths and credentials onto apps, envs and published
releases, and answer as that protocol does (its status codes and bodies, not the JSON
envelope of /api/v1).
"""
