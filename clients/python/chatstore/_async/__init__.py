"""The async client: the hand-written source of the sync one (`chatstore._sync`)."""
