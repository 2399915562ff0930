"""The FiftyOne App's doors in: operators, their forms, the VoG panel, plugin installation."""
