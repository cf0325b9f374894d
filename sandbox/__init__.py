"""Single-use execution of untrusted Python: contract, drivers, guest agent, image builder, pool.

This package knows nothing about workflows or Django models; `sandbox.contract` is its
public vocabulary and the drivers are reached through `sandbox.drivers.get_driver`.
"""
