"""Extensions written as a user outside the package would: only public negsample names."""
