"""vsc: keep marketplace vendors' own stores in step with a merchant's Shopify store."""

__version__ = "0.1.0"
USER_AGENT = f"vsc/{__version__} (+https://github.com/vsc-sync/vsc)"
