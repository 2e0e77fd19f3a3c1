"""CityBrain package."""
