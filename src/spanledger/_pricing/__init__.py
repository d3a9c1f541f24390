"""Pricing: exact Decimal USD from genai-prices and the user's price rules."""
