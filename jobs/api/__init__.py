"""The REST API under /api/: jobs, segments, reference images, renders and estimates.

Views only validate input with serializers and call jobs.services (writes) or jobs.selectors (reads,
scoped to the requesting user). Errors have one shape: see jobs.api.exceptions.
"""
