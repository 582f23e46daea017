"""Adapters layer: marketplace clients (Printify, Shopify, Etsy, local export)."""
