"""The member-care console: server-rendered pages at /console for an org's loyalty team."""
