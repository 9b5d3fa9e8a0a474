"""Sandbox stores: local emulators of Shopify, WooCommerce and Squarespace over real HTTP.

They serve the platforms' own paths, payload shapes, pagination, errors and
limits on 127.0.0.1, so tests, benchmarks, `vsc demo` and users' CI smoke
runs exercise vsc exactly as the real stores would. They are held to the
real platforms by the fact sheets and payloads in ../shared.
"""
