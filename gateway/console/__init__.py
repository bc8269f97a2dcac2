"""The web console (zh-CN) at /console/: pages for policy administrators and regulators."""
